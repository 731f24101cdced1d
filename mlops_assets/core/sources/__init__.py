"""Where orders come from: the Shopify client, file exports, record validation and quarantine, quality gates."""
