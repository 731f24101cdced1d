"""Synthetic shops with ground truth, the Shopify emulator and the demo's shops: test and demo
infrastructure that no asset imports."""
