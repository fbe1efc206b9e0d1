# Secrets: the admin DSN (migrate only) and the relay_app DSN (the service). RBAC mode, purge
# protection, private endpoint only.
resource "azurerm_key_vault" "relay" {
  name                          = substr("${var.name}-kv", 0, 24)
  location                      = var.location
  resource_group_name           = var.resource_group_name
  tenant_id                     = data.azurerm_client_config.current.tenant_id
  sku_name                      = "premium"
  enable_rbac_authorization     = true
  purge_protection_enabled      = true
  soft_delete_retention_days    = 90
  public_network_access_enabled = false
  network_acls {
    default_action = "Deny"
    bypass         = "AzureServices"
  }
}

resource "azurerm_private_endpoint" "vault" {
  name                = "${var.name}-kv"
  location            = var.location
  resource_group_name = var.resource_group_name
  subnet_id           = var.private_endpoint_subnet_id
  private_service_connection {
    name                           = "vault"
    private_connection_resource_id = azurerm_key_vault.relay.id
    subresource_names              = ["vault"]
    is_manual_connection           = false
  }
}

resource "azurerm_role_assignment" "admins_vault" {
  scope                = azurerm_key_vault.relay.id
  role_definition_name = "Key Vault Secrets Officer"
  principal_id         = var.admin_object_id
}

resource "azurerm_key_vault_secret" "admin_dsn" {
  name            = "admin-dsn"
  key_vault_id    = azurerm_key_vault.relay.id
  content_type    = "postgres DSN"
  expiration_date = timeadd(plantimestamp(), "8760h")
  value           = "postgres://relay_admin:${random_password.pg_admin.result}@${azurerm_postgresql_flexible_server.relay.fqdn}:5432/relay?sslmode=require"
  lifecycle {
    ignore_changes = [expiration_date]
  }
  depends_on = [azurerm_role_assignment.admins_vault]
}

# The runtime DSN is written after migrate (README); only its name is created here.
resource "azurerm_key_vault_secret" "app_dsn" {
  name            = "app-dsn"
  key_vault_id    = azurerm_key_vault.relay.id
  content_type    = "postgres DSN"
  expiration_date = timeadd(plantimestamp(), "8760h")
  value           = "set-after-migrate"
  lifecycle {
    ignore_changes = [value, expiration_date]
  }
  depends_on = [azurerm_role_assignment.admins_vault]
}

# The service reads exactly one secret.
resource "azurerm_role_assignment" "server_app_dsn" {
  scope                = "${azurerm_key_vault.relay.id}/secrets/${azurerm_key_vault_secret.app_dsn.name}"
  role_definition_name = "Key Vault Secrets User"
  principal_id         = azurerm_user_assigned_identity.server.principal_id
}

# The server's own secrets (trail-hmac, token-signing, export-seal keys; each edge's trail key
# and ingest token), which relay-server creates and rotates itself (RELAY_AZURE_KEY_VAULT_URL).
# A vault of their own: Key Vault RBAC cannot be narrowed to a name prefix, and any role that
# can set secrets on the DSN vault above could also read admin-dsn (the schema owner), which
# the runtime identity must never hold. Same hardening as the DSN vault.
resource "azurerm_key_vault" "server" {
  name                          = substr("${var.name}-srv-kv", 0, 24)
  location                      = var.location
  resource_group_name           = var.resource_group_name
  tenant_id                     = data.azurerm_client_config.current.tenant_id
  sku_name                      = "premium"
  enable_rbac_authorization     = true
  purge_protection_enabled      = true
  soft_delete_retention_days    = 90
  public_network_access_enabled = false
  network_acls {
    default_action = "Deny"
    bypass         = "AzureServices"
  }
}

resource "azurerm_private_endpoint" "server_vault" {
  name                = "${var.name}-srv-kv"
  location            = var.location
  resource_group_name = var.resource_group_name
  subnet_id           = var.private_endpoint_subnet_id
  private_service_connection {
    name                           = "vault"
    private_connection_resource_id = azurerm_key_vault.server.id
    subresource_names              = ["vault"]
    is_manual_connection           = false
  }
}

# What the relay-azure secret provider calls, and no delete, purge, backup or restore:
# getSecret (read a version), setSecret (create a secret and add rotation versions),
# readMetadata (list a secret's versions, oldest first). Narrower than the built-in "Key Vault
# Secrets Officer" (secrets/*, which includes delete); "Key Vault Secrets User" cannot set.
resource "azurerm_role_definition" "server_secrets" {
  name        = "${var.name}-server-secrets"
  scope       = azurerm_key_vault.server.id
  description = "Read, create and add versions of relay-server's own secrets; no delete or purge."
  permissions {
    data_actions = [
      "Microsoft.KeyVault/vaults/secrets/getSecret/action",
      "Microsoft.KeyVault/vaults/secrets/setSecret/action",
      "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
    ]
  }
  assignable_scopes = [azurerm_key_vault.server.id]
}

resource "azurerm_role_assignment" "server_secrets" {
  scope              = azurerm_key_vault.server.id
  role_definition_id = azurerm_role_definition.server_secrets.role_definition_resource_id
  principal_id       = azurerm_user_assigned_identity.server.principal_id
}
