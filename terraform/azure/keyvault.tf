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
