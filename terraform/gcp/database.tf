# Postgres with a private IP only; TLS required; the admin (owner) password lives in Secret
# Manager and is used only by `relay-server migrate`; the service connects as relay_app.
resource "google_sql_database_instance" "relay" {
  #checkov:skip=CKV_GCP_79:The relay is tested and qualified on Postgres 15 and 16; a major upgrade is a change-controlled step after requalification.
  name                = "${var.name}-pg"
  database_version    = "POSTGRES_16"
  region              = var.region
  deletion_protection = true
  encryption_key_name = google_kms_crypto_key.relay.id
  settings {
    tier              = var.db_tier
    availability_type = "REGIONAL"
    disk_autoresize   = true
    ip_configuration {
      ipv4_enabled    = false
      private_network = var.network
      ssl_mode        = "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"
    }
    backup_configuration {
      enabled                        = true
      point_in_time_recovery_enabled = true
      backup_retention_settings {
        retained_backups = 35
      }
    }
    database_flags {
      name  = "log_connections"
      value = "on"
    }
    database_flags {
      name  = "log_disconnections"
      value = "on"
    }
    database_flags {
      name  = "log_checkpoints"
      value = "on"
    }
    database_flags {
      name  = "log_lock_waits"
      value = "on"
    }
    database_flags {
      name  = "log_min_messages"
      value = "error"
    }
    database_flags {
      name  = "log_min_error_statement"
      value = "error"
    }
    database_flags {
      name  = "log_min_duration_statement"
      value = "-1"
    }
    database_flags {
      name  = "log_statement"
      value = "ddl"
    }
    database_flags {
      name  = "cloudsql.enable_pgaudit"
      value = "on"
    }
    database_flags {
      name  = "log_hostname"
      value = "on"
    }
    database_flags {
      name  = "log_duration"
      value = "on"
    }
  }
  depends_on = [google_kms_crypto_key_iam_member.agents]
}

resource "google_sql_database" "relay" {
  name     = "relay"
  instance = google_sql_database_instance.relay.name
}

resource "google_project_iam_member" "server_sql_client" {
  project = var.project
  role    = "roles/cloudsql.client"
  member  = "serviceAccount:${google_service_account.server.email}"
}
