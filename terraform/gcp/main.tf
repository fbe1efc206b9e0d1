data "google_project" "current" {}

# Customer-managed key for the bucket, the database and the secrets.
resource "google_kms_key_ring" "relay" {
  name     = var.name
  location = var.region
}

resource "google_kms_crypto_key" "relay" {
  name            = "${var.name}-data"
  key_ring        = google_kms_key_ring.relay.id
  rotation_period = "7776000s"
  lifecycle {
    prevent_destroy = true
  }
}

locals {
  gcs_agent = "serviceAccount:service-${data.google_project.current.number}@gs-project-accounts.iam.gserviceaccount.com"
  sql_agent = "serviceAccount:service-${data.google_project.current.number}@gcp-sa-cloud-sql.iam.gserviceaccount.com"
  sm_agent  = "serviceAccount:service-${data.google_project.current.number}@gcp-sa-secretmanager.iam.gserviceaccount.com"
}

resource "google_kms_crypto_key_iam_member" "agents" {
  for_each      = toset([local.gcs_agent, local.sql_agent, local.sm_agent])
  crypto_key_id = google_kms_crypto_key.relay.id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = each.value
}

# The identity relay-server runs as. Its grants: object create/read and bucket metadata on the
# anchor bucket (storage.tf), the runtime DSN and its own prefixed secrets (secrets.tf; secret
# creation is the one project-level permission, see there), and Cloud SQL client.
resource "google_service_account" "server" {
  account_id   = "${var.name}-server"
  display_name = "relay-server runtime"
}
