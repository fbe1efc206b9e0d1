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

# The server's own secrets (trail-hmac, token-signing, export-seal keys; each edge's trail key
# and ingest token) are created and rotated by relay-server itself in Secret Manager, as
# `<prefix><name>`. The prefix differs from the DSN secrets above (`<name>-app-dsn`,
# `<name>-admin-dsn`), so the conditional grant below never reaches the admin DSN. The adapter
# creates its secrets with automatic replication and Google-managed encryption (it sends no
# CMEK), so the server needs no KMS grant; an org policy that requires CMEK on secrets would
# refuse those creates.
locals {
  server_secret_prefix = "${var.name}-server-"
  # IAM evaluates Secret Manager resource names with the project number.
  server_secret_names = "projects/${data.google_project.current.number}/secrets/${local.server_secret_prefix}"
}

# secretmanager.secrets.create is checked on the project (the parent), not on the secret to be
# created, so a resource.name condition cannot narrow it: this role carries that one permission,
# unconditioned. It lets the server create new secrets; reading, versioning, deleting or
# re-permissioning any secret it does not also hold the role below for stays impossible.
resource "google_project_iam_custom_role" "secret_creator" {
  role_id     = replace("${var.name}_secret_creator", "-", "_")
  title       = "relay-server secret creator"
  description = "Create Secret Manager secrets (no read, no versions, no delete)."
  permissions = ["secretmanager.secrets.create"]
}

resource "google_project_iam_member" "server_secret_create" {
  project = var.project
  role    = google_project_iam_custom_role.secret_creator.id
  member  = "serviceAccount:${google_service_account.server.email}"
}

# What the adapter calls on its own secrets, and nothing else: versions.add (create's first
# version and every rotation), versions.access (read a version, `latest` included),
# versions.list (the key ids of a secret; also how an interrupted create is detected). No
# secrets.delete, versions.destroy/disable or setIamPolicy. Only on secrets under the prefix.
resource "google_project_iam_custom_role" "secret_user" {
  role_id     = replace("${var.name}_secret_user", "-", "_")
  title       = "relay-server secret user"
  description = "Add, access and list versions of the relay-server's own secrets."
  permissions = [
    "secretmanager.versions.add",
    "secretmanager.versions.access",
    "secretmanager.versions.list",
  ]
}

resource "google_project_iam_member" "server_secret_use" {
  project = var.project
  role    = google_project_iam_custom_role.secret_user.id
  member  = "serviceAccount:${google_service_account.server.email}"
  condition {
    title       = "relay-server secrets only"
    description = "Secrets whose id starts with ${local.server_secret_prefix}"
    expression  = "resource.name.startsWith(\"${local.server_secret_names}\")"
  }
}
