# Runtime DSN of relay_app (value set after `migrate`, see README) and the relay's own keys
# (trail HMAC, export seal, token signing) until the AWS Secrets Manager adapter reads them
# directly. Encrypted with the relay key; only the task roles below can read them.
resource "aws_secretsmanager_secret" "app_dsn" {
  #checkov:skip=CKV2_AWS_57:Rotation of the relay_app password is an operator step (ALTER ROLE + new secret version, docs/operations.md); a Lambda rotator is not shipped.
  name_prefix             = "${var.name}/app-dsn-"
  description             = "postgres:// DSN of the relay_app runtime role (SELECT, INSERT only)"
  kms_key_id              = aws_kms_key.relay.arn
  recovery_window_in_days = 30
}

resource "aws_secretsmanager_secret" "relay_keys" {
  #checkov:skip=CKV2_AWS_57:HMAC and seal keys rotate with `relay-edge keys rotate` semantics (old versions must stay readable for verification), not by a Secrets Manager rotator.
  name_prefix             = "${var.name}/relay-keys-"
  description             = "relay trail HMAC, export seal and token keys"
  kms_key_id              = aws_kms_key.relay.arn
  recovery_window_in_days = 30
}
