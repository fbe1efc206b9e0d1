# Notary anchors: uniform access, no public access, versioned, CMEK, and a LOCKED retention
# policy, so no one (project owners included) can delete or shorten it before it expires.
resource "google_storage_bucket" "anchors" {
  #checkov:skip=CKV_GCP_62:Access logs of the anchor bucket go through Cloud Audit Logs (data access), which the customer enables org-wide; legacy usage logs need another bucket.
  name                        = "${var.project}-${var.name}-anchors"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false
  versioning {
    enabled = true
  }
  retention_policy {
    is_locked        = true
    retention_period = var.anchor_retention_days * 86400
  }
  encryption {
    default_kms_key_name = google_kms_crypto_key.relay.id
  }
  depends_on = [google_kms_crypto_key_iam_member.agents]
}

# Create and read objects; no delete, no overwrite, no bucket or retention changes.
resource "google_storage_bucket_iam_member" "server_create" {
  bucket = google_storage_bucket.anchors.name
  role   = "roles/storage.objectCreator"
  member = "serviceAccount:${google_service_account.server.email}"
}

resource "google_storage_bucket_iam_member" "server_read" {
  bucket = google_storage_bucket.anchors.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.server.email}"
}
