resource "google_cloud_run_v2_service" "server" {
  name                = "${var.name}-server"
  location            = var.region
  ingress             = "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"
  deletion_protection = true
  template {
    service_account = google_service_account.server.email
    scaling {
      min_instance_count = 1
      max_instance_count = 1
    }
    vpc_access {
      egress = "PRIVATE_RANGES_ONLY"
      network_interfaces {
        network    = var.network
        subnetwork = var.vpc_connector_subnet
      }
    }
    containers {
      image   = var.image
      command = ["relay-server"]
      args    = ["run"]
      ports {
        container_port = 8471
      }
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
      # provider "gcp" (image built with the relay-server/gcp feature): records and accounts in
      # Cloud SQL, anchors in the locked-retention bucket, the server's keys and ingest tokens
      # in Secret Manager under local.server_secret_prefix. Credentials: Application Default
      # Credentials, i.e. the metadata server of Cloud Run (this service account); no key file.
      env {
        name  = "RELAY_STORAGE__PROVIDER"
        value = "gcp"
      }
      # Anchors (anchors/) and the object store (objects/) share the one bucket, so objects are
      # under the locked retention as well. The adapter refuses to start unless the retention
      # policy is locked and at least NOTARY_MIN_RETENTION_DAYS long; never ALLOW_NON_WORM.
      env {
        name  = "RELAY_GCP_BUCKET"
        value = google_storage_bucket.anchors.name
      }
      env {
        name  = "RELAY_GCP_NOTARY_BUCKET"
        value = google_storage_bucket.anchors.name
      }
      env {
        name  = "RELAY_GCP_NOTARY_MIN_RETENTION_DAYS"
        value = tostring(var.anchor_retention_days)
      }
      env {
        name  = "RELAY_GCP_PROJECT"
        value = var.project
      }
      env {
        name  = "RELAY_GCP_SECRET_PREFIX"
        value = local.server_secret_prefix
      }
      env {
        name = "RELAY_STORAGE__PG_DSN"
        value_source {
          secret_key_ref {
            secret  = google_secret_manager_secret.app_dsn.secret_id
            version = "latest"
          }
        }
      }
      startup_probe {
        http_get {
          path = "/healthz"
        }
      }
      liveness_probe {
        http_get {
          path = "/healthz"
        }
      }
    }
  }
  depends_on = [
    google_secret_manager_secret_iam_member.server_app_dsn,
    google_storage_bucket_iam_member.server_create,
    google_storage_bucket_iam_member.server_read,
    google_storage_bucket_iam_member.server_bucket_metadata,
    google_project_iam_member.server_secret_create,
    google_project_iam_member.server_secret_use,
  ]
}

resource "google_cloud_run_v2_service_iam_member" "invokers" {
  for_each = toset(var.invokers)
  name     = google_cloud_run_v2_service.server.name
  location = var.region
  role     = "roles/run.invoker"
  member   = each.value
}
