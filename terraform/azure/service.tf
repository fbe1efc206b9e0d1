resource "azurerm_container_app_environment" "relay" {
  name                           = "${var.name}-env"
  location                       = var.location
  resource_group_name            = var.resource_group_name
  log_analytics_workspace_id     = azurerm_log_analytics_workspace.relay.id
  infrastructure_subnet_id       = var.infrastructure_subnet_id
  internal_load_balancer_enabled = true
}

resource "azurerm_container_app" "server" {
  name                         = "${var.name}-server"
  container_app_environment_id = azurerm_container_app_environment.relay.id
  resource_group_name          = var.resource_group_name
  revision_mode                = "Single"
  identity {
    type         = "UserAssigned"
    identity_ids = [azurerm_user_assigned_identity.server.id]
  }
  secret {
    name                = "app-dsn"
    key_vault_secret_id = azurerm_key_vault_secret.app_dsn.versionless_id
    identity            = azurerm_user_assigned_identity.server.id
  }
  ingress {
    external_enabled = false
    target_port      = 8471
    transport        = "http"
    traffic_weight {
      latest_revision = true
      percentage      = 100
    }
  }
  template {
    min_replicas = 1
    max_replicas = 1
    container {
      name    = "relay-server"
      image   = var.image
      cpu     = 1
      memory  = "2Gi"
      command = ["relay-server"]
      args    = ["run"]
      env {
        name  = "RELAY_LISTEN"
        value = "0.0.0.0:8471"
      }
      # Behind the platform's load balancer every client has the balancer's address, so the
      # per-client login failure limit would let one person's typos block everyone's logins;
      # the per-account lockout and the Argon2 gate still hold (docs/operations.md).
      env {
        name  = "RELAY_CLIENT_FAILURE_LIMIT"
        value = "0"
      }
      # provider "azure" (image built with the relay-server/azure feature): records and
      # accounts in the Flexible Server, anchors in the `anchors` container (version-level
      # immutability, each anchor Locked for ANCHOR_RETENTION_DAYS; the adapter refuses to start
      # if it cannot lock a probe blob; never ALLOW_NON_WORM), the server's keys and ingest
      # tokens in its own Key Vault. No OBJECT_CONTAINER: relay-server uses no object store.
      env {
        name  = "RELAY_STORAGE__PROVIDER"
        value = "azure"
      }
      # The user-assigned identity, through the Container Apps managed identity endpoint.
      env {
        name  = "RELAY_AZURE_CREDENTIAL"
        value = "managed-identity"
      }
      env {
        name  = "RELAY_AZURE_CLIENT_ID"
        value = azurerm_user_assigned_identity.server.client_id
      }
      env {
        name  = "RELAY_AZURE_STORAGE_ACCOUNT"
        value = azurerm_storage_account.anchors.name
      }
      env {
        name  = "RELAY_AZURE_NOTARY_CONTAINER"
        value = azurerm_storage_container.anchors.name
      }
      env {
        name  = "RELAY_AZURE_ANCHOR_RETENTION_DAYS"
        value = tostring(var.anchor_retention_days)
      }
      env {
        name  = "RELAY_AZURE_KEY_VAULT_URL"
        value = azurerm_key_vault.server.vault_uri
      }
      env {
        name        = "RELAY_STORAGE__PG_DSN"
        secret_name = "app-dsn"
      }
      liveness_probe {
        transport = "HTTP"
        port      = 8471
        path      = "/healthz"
      }
      readiness_probe {
        transport = "HTTP"
        port      = 8471
        path      = "/healthz"
      }
    }
  }
  depends_on = [
    azurerm_role_assignment.server_app_dsn,
    azurerm_role_assignment.server_anchors,
    azurerm_role_assignment.server_secrets,
    azurerm_private_endpoint.anchors_blob,
    azurerm_private_endpoint.server_vault,
  ]
}
