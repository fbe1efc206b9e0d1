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
      env {
        name  = "RELAY_STORAGE__PROVIDER"
        value = "selfhosted"
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
  depends_on = [google_secret_manager_secret_iam_member.server_app_dsn]
}

resource "google_cloud_run_v2_service_iam_member" "invokers" {
  for_each = toset(var.invokers)
  name     = google_cloud_run_v2_service.server.name
  location = var.region
  role     = "roles/run.invoker"
  member   = each.value
}
