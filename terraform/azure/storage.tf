# Notary anchors: version-level immutability with a LOCKED policy on the container, so blobs
# cannot be deleted or overwritten and the period cannot be shortened; no public access, no
# shared keys (Entra ID only), TLS 1.2, reachable through a private endpoint.
resource "azurerm_storage_account" "anchors" {
  #checkov:skip=CKV_AZURE_206:Replication is GZRS (zone + geo); RA-GZRS read access is not needed.
  #checkov:skip=CKV2_AZURE_1:Encryption with a customer-managed key is optional; Microsoft-managed keys plus immutability meet the control. Add a CMK if policy requires.
  #checkov:skip=CKV2_AZURE_33:The private endpoint is for the blob service (below); no other service is used.
  name                              = substr("${var.name}anchors", 0, 24)
  resource_group_name               = var.resource_group_name
  location                          = var.location
  account_tier                      = "Standard"
  account_replication_type          = "GZRS"
  min_tls_version                   = "TLS1_2"
  https_traffic_only_enabled        = true
  allow_nested_items_to_be_public   = false
  shared_access_key_enabled         = false
  public_network_access_enabled     = false
  default_to_oauth_authentication   = true
  infrastructure_encryption_enabled = true
  local_user_enabled                = false
  blob_properties {
    versioning_enabled = true
    delete_retention_policy {
      days = 365
    }
    container_delete_retention_policy {
      days = 365
    }
  }
  immutability_policy {
    allow_protected_append_writes = false
    state                         = "Unlocked"
    period_since_creation_in_days = var.anchor_retention_days
  }
  sas_policy {
    expiration_period = "00.01:00:00"
  }
  network_rules {
    default_action = "Deny"
    bypass         = ["AzureServices"]
  }
  queue_properties {
    logging {
      delete                = true
      read                  = true
      write                 = true
      version               = "1.0"
      retention_policy_days = 30
    }
  }
}

resource "azurerm_storage_container" "anchors" {
  #checkov:skip=CKV2_AZURE_21:Blob read logging goes to the Log Analytics workspace through diagnostic settings (below).
  name                  = "anchors"
  storage_account_id    = azurerm_storage_account.anchors.id
  container_access_type = "private"
}

# The container-level policy is locked: Azure then refuses deletion and any shortening.
resource "azurerm_storage_container_immutability_policy" "anchors" {
  storage_container_resource_manager_id = azurerm_storage_container.anchors.resource_manager_id
  immutability_period_in_days           = var.anchor_retention_days
  protected_append_writes_enabled       = false
  locked                                = true
}

resource "azurerm_private_endpoint" "anchors_blob" {
  name                = "${var.name}-anchors-blob"
  location            = var.location
  resource_group_name = var.resource_group_name
  subnet_id           = var.private_endpoint_subnet_id
  private_service_connection {
    name                           = "blob"
    private_connection_resource_id = azurerm_storage_account.anchors.id
    subresource_names              = ["blob"]
    is_manual_connection           = false
  }
}

resource "azurerm_monitor_diagnostic_setting" "anchors_blob" {
  name                       = "${var.name}-anchors-blob"
  target_resource_id         = "${azurerm_storage_account.anchors.id}/blobServices/default"
  log_analytics_workspace_id = azurerm_log_analytics_workspace.relay.id
  enabled_log {
    category_group = "audit"
  }
}

# Read and create blobs: "Storage Blob Data Contributor" would allow delete, so a custom role
# with only what the relay-azure notary calls, and no delete:
# - containers/read: the container's properties (x-ms-immutable-storage-with-versioning-enabled).
# - blobs/read: list the trail's anchors with every version, read each back with its policy.
# - blobs/write + blobs/add/action: Put Blob of a new anchor (If-None-Match: *).
# - blobs/immutableStorage/runAsSuperUser/action: Azure's one data action for Set Blob
#   Immutability Policy, which the notary needs twice: the x-ms-immutability-policy-* headers
#   (mode Locked, until now + RELAY_AZURE_ANCHOR_RETENTION_DAYS) on each anchor's Put Blob, and
#   the start-up probe that locks a `worm-probe/` blob. The same action allows deleting or
#   shortening an UNLOCKED blob policy; every anchor and probe is Locked in the request that
#   creates it, and Azure refuses to shorten or remove a locked policy, so it cannot weaken one.
#   No delete (blobs/delete, deleteBlobVersion, permanentDelete), no legal hold, no container
#   write (the locked container policy stays out of reach).
resource "azurerm_role_definition" "anchor_writer" {
  name        = "${var.name}-anchor-writer"
  scope       = azurerm_storage_account.anchors.id
  description = "Create, lock and read notary anchors; no delete, no container or legal-hold changes."
  permissions {
    actions = ["Microsoft.Storage/storageAccounts/blobServices/containers/read"]
    data_actions = [
      "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read",
      "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write",
      "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/add/action",
      "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/immutableStorage/runAsSuperUser/action",
    ]
  }
  assignable_scopes = [azurerm_storage_account.anchors.id]
}

resource "azurerm_role_assignment" "server_anchors" {
  scope              = azurerm_storage_container.anchors.resource_manager_id
  role_definition_id = azurerm_role_definition.anchor_writer.role_definition_resource_id
  principal_id       = azurerm_user_assigned_identity.server.principal_id
}
