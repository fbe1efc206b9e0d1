output "anchor_bucket" {
  description = "Bucket of notary anchors (locked retention, uniform access)."
  value       = google_storage_bucket.anchors.name
}

output "db_private_ip" {
  description = "Private IP of Cloud SQL."
  value       = google_sql_database_instance.relay.private_ip_address
}

output "service_account" {
  description = "Identity of relay-server (bucket create+view+metadata, secret accessor on the app DSN, its own secrets under the server prefix, Cloud SQL client)."
  value       = google_service_account.server.email
}

output "service_uri" {
  description = "URI of the Cloud Run service (internal load balancer ingress only)."
  value       = google_cloud_run_v2_service.server.uri
}

output "server_secret_prefix" {
  description = "Secret Manager id prefix of the secrets relay-server creates and rotates itself."
  value       = local.server_secret_prefix
}
