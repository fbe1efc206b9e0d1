# Values are added as versions out of band (README), never through Terraform state.
resource "google_secret_manager_secret" "app_dsn" {
  secret_id = "${var.name}-app-dsn"
  replication {
    user_managed {
      replicas {
        location = var.region
        customer_managed_encryption {
          kms_key_name = google_kms_crypto_key.relay.id
        }
      }
    }
  }
  depends_on = [google_kms_crypto_key_iam_member.agents]
}

resource "google_secret_manager_secret" "admin_dsn" {
  secret_id = "${var.name}-admin-dsn"
  replication {
    user_managed {
      replicas {
        location = var.region
        customer_managed_encryption {
          kms_key_name = google_kms_crypto_key.relay.id
        }
      }
    }
  }
  depends_on = [google_kms_crypto_key_iam_member.agents]
}

# The service reads only the runtime DSN; the admin DSN is for the migrate job's operator.
resource "google_secret_manager_secret_iam_member" "server_app_dsn" {
  secret_id = google_secret_manager_secret.app_dsn.id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.server.email}"
}
