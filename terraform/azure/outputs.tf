output "anchor_container" {
  description = "Container of notary anchors (locked version-level immutability)."
  value       = "${azurerm_storage_account.anchors.name}/${azurerm_storage_container.anchors.name}"
}

output "postgres_fqdn" {
  description = "Private FQDN of the Flexible Server."
  value       = azurerm_postgresql_flexible_server.relay.fqdn
}

output "key_vault_uri" {
  description = "Key Vault of the DSNs."
  value       = azurerm_key_vault.relay.vault_uri
}

output "server_key_vault_uri" {
  description = "Key Vault of relay-server's own keys and ingest tokens (RELAY_AZURE_KEY_VAULT_URL)."
  value       = azurerm_key_vault.server.vault_uri
}

output "server_identity_principal_id" {
  description = "Managed identity of relay-server (anchor writer on the container, secrets user on app-dsn, server-secrets role on its own vault)."
  value       = azurerm_user_assigned_identity.server.principal_id
}
