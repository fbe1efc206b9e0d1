# Postgres Flexible Server on a delegated subnet (no public access), TLS enforced, zone-redundant
# HA, 35-day backups. The administrator password is generated and stored in Key Vault; it is
# used only by `relay-server migrate`; the service connects as relay_app.
resource "random_password" "pg_admin" {
  length  = 40
  special = false
}

resource "azurerm_postgresql_flexible_server" "relay" {
  #checkov:skip=CKV2_AZURE_57:VNet integration (delegated subnet, public access disabled) makes the server private; a private endpoint is the alternative model, not an addition.
  #checkov:skip=CKV_AZURE_136:Geo-redundant backup is a customer DR choice; zone-redundant HA and 35-day PITR are on.
  name                          = "${var.name}-pg"
  resource_group_name           = var.resource_group_name
  location                      = var.location
  version                       = "16"
  sku_name                      = "GP_Standard_D2ds_v5"
  storage_mb                    = 65536
  delegated_subnet_id           = var.postgres_subnet_id
  private_dns_zone_id           = var.postgres_private_dns_zone_id
  public_network_access_enabled = false
  administrator_login           = "relay_admin"
  administrator_password        = random_password.pg_admin.result
  backup_retention_days         = 35
  zone                          = "1"
  high_availability {
    mode                      = "ZoneRedundant"
    standby_availability_zone = "2"
  }
}

resource "azurerm_postgresql_flexible_server_configuration" "require_tls" {
  name      = "require_secure_transport"
  server_id = azurerm_postgresql_flexible_server.relay.id
  value     = "on"
}

resource "azurerm_postgresql_flexible_server_configuration" "log_connections" {
  name      = "log_connections"
  server_id = azurerm_postgresql_flexible_server.relay.id
  value     = "on"
}

resource "azurerm_postgresql_flexible_server_database" "relay" {
  name      = "relay"
  server_id = azurerm_postgresql_flexible_server.relay.id
}
