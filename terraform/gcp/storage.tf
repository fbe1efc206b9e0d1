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

# Create and read objects; no delete, no overwrite, no bucket or retention changes. No KMS
# grant: with CMEK on the bucket, Cloud Storage's service agent (main.tf) encrypts and decrypts,
# not the caller.
# objectCreator (storage.objects.create): anchor uploads (ifGenerationMatch=0, a fresh name each).
resource "google_storage_bucket_iam_member" "server_create" {
  bucket = google_storage_bucket.anchors.name
  role   = "roles/storage.objectCreator"
  member = "serviceAccount:${google_service_account.server.email}"
}

# objectViewer (storage.objects.get, storage.objects.list): listing a trail's anchors and
# reading them back (retentionExpirationTime is checked on each).
resource "google_storage_bucket_iam_member" "server_read" {
  bucket = google_storage_bucket.anchors.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.server.email}"
}

# storage.buckets.get only (objectViewer does not include it): at start-up the notary and the
# object store read the bucket's metadata to check that its retention policy is locked and long
# enough, and refuse to start otherwise. A custom role, because the predefined roles carrying
# buckets.get (legacyBucketReader, ...) also grant object listing or more.
resource "google_project_iam_custom_role" "bucket_metadata_reader" {
  role_id     = replace("${var.name}_bucket_metadata", "-", "_")
  title       = "relay-server bucket metadata reader"
  description = "Read a bucket's metadata (retention policy); nothing else."
  permissions = ["storage.buckets.get"]
}

resource "google_storage_bucket_iam_member" "server_bucket_metadata" {
  bucket = google_storage_bucket.anchors.name
  role   = google_project_iam_custom_role.bucket_metadata_reader.id
  member = "serviceAccount:${google_service_account.server.email}"
}
