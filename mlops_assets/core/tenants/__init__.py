"""Who the tenants are: the id rule, the registry, typed per-tenant settings, API keys."""
