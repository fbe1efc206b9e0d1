output "anchor_bucket" {
  description = "Object Lock (COMPLIANCE) bucket of notary anchors."
  value       = aws_s3_bucket.anchors.bucket
}

output "db_endpoint" {
  description = "RDS endpoint (private)."
  value       = aws_db_instance.relay.address
}

output "db_admin_secret_arn" {
  description = "Secrets Manager secret of the admin (owner) credentials, managed by RDS; used only by migrate."
  value       = aws_db_instance.relay.master_user_secret[0].secret_arn
}

output "app_dsn_secret_arn" {
  description = "Secret to fill with the relay_app DSN after migrate."
  value       = aws_secretsmanager_secret.app_dsn.arn
}

output "task_role_arn" {
  description = "Role of relay-server: put/get anchors, no delete, no retention changes."
  value       = aws_iam_role.task.arn
}

output "log_group" {
  description = "CloudWatch log group of relay-server."
  value       = aws_cloudwatch_log_group.relay.name
}
