resource "aws_cloudwatch_log_group" "relay" {
  name              = "/gims-relay/${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.relay.arn
}

resource "aws_ecs_cluster" "relay" {
  name = var.name
  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

resource "aws_security_group" "server" {
  name_prefix = "${var.name}-server-"
  description = "relay-server tasks"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "server_listener" {
  for_each          = toset(var.ingress_cidrs)
  security_group_id = aws_security_group.server.id
  description       = "relay-server listener"
  cidr_ipv4         = each.value
  from_port         = 8471
  to_port           = 8471
  ip_protocol       = "tcp"
}

resource "aws_vpc_security_group_egress_rule" "server_https" {
  security_group_id = aws_security_group.server.id
  description       = "HTTPS to S3, Secrets Manager, CloudWatch (VPC endpoints or NAT)"
  cidr_ipv4         = "0.0.0.0/0"
  from_port         = 443
  to_port           = 443
  ip_protocol       = "tcp"
}

resource "aws_vpc_security_group_egress_rule" "server_db" {
  security_group_id            = aws_security_group.server.id
  description                  = "Postgres"
  referenced_security_group_id = aws_security_group.db.id
  from_port                    = 5432
  to_port                      = 5432
  ip_protocol                  = "tcp"
}

data "aws_iam_policy_document" "ecs_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

# Execution role: pull the image, write logs, inject the two secrets.
resource "aws_iam_role" "execution" {
  name_prefix        = "${var.name}-exec-"
  assume_role_policy = data.aws_iam_policy_document.ecs_assume.json
}

data "aws_iam_policy_document" "execution" {
  #checkov:skip=CKV_AWS_356:ecr:GetAuthorizationToken supports no resource scoping; the pull actions are read-only and the image is pinned by digest.
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.relay.arn}:*"]
  }
  statement {
    sid       = "Secrets"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [aws_secretsmanager_secret.app_dsn.arn, aws_secretsmanager_secret.relay_keys.arn]
  }
  statement {
    sid       = "DecryptSecrets"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.relay.arn]
  }
  statement {
    sid       = "PullImage"
    actions   = ["ecr:GetAuthorizationToken", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "execution" {
  #checkov:skip=CKV_AWS_355:ecr:GetAuthorizationToken has no resource-level permissions; the other ECR actions are read-only pulls.
  #checkov:skip=CKV_AWS_290:Same statement: ECR pull actions cannot be scoped by resource for GetAuthorizationToken.
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

# Task role: anchors can be written (with COMPLIANCE retention) and read, never deleted,
# overwritten-with-bypass, put under a weaker lock mode or a legal hold (no s3:Delete*,
# s3:PutObjectLegalHold, s3:BypassGovernanceRetention, s3:PutBucket*).
resource "aws_iam_role" "task" {
  name_prefix        = "${var.name}-task-"
  assume_role_policy = data.aws_iam_policy_document.ecs_assume.json
}

locals {
  # Every secret of the AWS adapter's SecretsManagerProvider: `<secrets_prefix><name>` (the
  # trail-hmac, token-signing and export-seal keys, each edge's trail-hmac.<edge> and
  # ingest-token.<edge>). Secrets Manager appends `-XXXXXX` to each secret's ARN.
  relay_secrets_arn = "arn:${local.partition}:secretsmanager:${var.region}:${local.account_id}:secret:${var.secrets_prefix}*"
}

data "aws_iam_policy_document" "task" {
  # Anchors: write once, read back with their
  # retention; no delete, retention change or governance bypass.
  statement {
    sid       = "AnchorsWriteOnceRead"
    actions   = ["s3:PutObject", "s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectRetention"]
    resources = ["${aws_s3_bucket.anchors.arn}/*"]
  }
  # Every put carries x-amz-object-lock-mode=COMPLIANCE and a retain-until date, which S3
  # authorizes as s3:PutObjectRetention. Only COMPLIANCE is allowed; a COMPLIANCE retention can
  # never be shortened or removed afterwards, so this grants no way to weaken a lock.
  statement {
    sid       = "AnchorsLockOnWrite"
    actions   = ["s3:PutObjectRetention"]
    resources = ["${aws_s3_bucket.anchors.arn}/*"]
    condition {
      test     = "StringEquals"
      variable = "s3:object-lock-mode"
      values   = ["COMPLIANCE"]
    }
  }
  # Listing anchor versions and the start-up checks of the bucket (Object Lock on, versioning).
  statement {
    sid       = "AnchorsList"
    actions   = ["s3:ListBucket", "s3:ListBucketVersions", "s3:GetBucketObjectLockConfiguration", "s3:GetBucketVersioning"]
    resources = [aws_s3_bucket.anchors.arn]
  }
  # SSE-KMS of the anchor bucket (bucket default and the adapter's explicit key on every put):
  # PutObject needs GenerateDataKey, GetObject needs Decrypt. kms:Encrypt is never called. Only
  # through S3, and only for this bucket (with S3 Bucket Keys the context is the bucket ARN,
  # without them the object ARN).
  statement {
    sid       = "AnchorsEncrypt"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [aws_kms_key.relay.arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${var.region}.amazonaws.com"]
    }
    condition {
      test     = "StringLike"
      variable = "kms:EncryptionContext:aws:s3:arn"
      values   = [aws_s3_bucket.anchors.arn, "${aws_s3_bucket.anchors.arn}/*"]
    }
  }
  # Relay secrets, read side (adapters/relay-aws/src/secrets.rs): GetSecretValue of the current
  # version (every key version is inside it) and DescribeSecret when a secret created
  # beforehand without a value is adopted.
  statement {
    sid       = "RelaySecretsRead"
    actions   = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
    resources = [local.relay_secrets_arn]
  }
  # Relay secrets, write side: CreateSecret on first use of a key (with the configured KMS key)
  # and PutSecretValue for each rotation (a new AWSCURRENT version holding all keys). No
  # DeleteSecret, UpdateSecretVersionStage, RestoreSecret, rotation or resource-policy actions:
  # the relay never deletes a key or moves AWSCURRENT back.
  statement {
    sid       = "RelaySecretsWrite"
    actions   = ["secretsmanager:CreateSecret", "secretsmanager:PutSecretValue"]
    resources = [local.relay_secrets_arn]
  }
  # Envelope encryption of those secrets with the relay key (storage.aws_kms_key_id): Secrets
  # Manager calls GenerateDataKey for CreateSecret/PutSecretValue and Decrypt for
  # GetSecretValue on the caller's behalf. Only through Secrets Manager, only for secrets
  # under the prefix.
  statement {
    sid       = "RelaySecretsEncrypt"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [aws_kms_key.relay.arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["secretsmanager.${var.region}.amazonaws.com"]
    }
    condition {
      test     = "StringLike"
      variable = "kms:EncryptionContext:SecretARN"
      values   = [local.relay_secrets_arn]
    }
  }
}

resource "aws_iam_role_policy" "task" {
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.task.json
}

resource "aws_ecs_task_definition" "server" {
  family                   = var.name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = 1024
  memory                   = 2048
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn
  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }
  container_definitions = jsonencode([{
    name                   = "relay-server"
    image                  = var.image
    essential              = true
    command                = ["run"]
    user                   = "10001:10001"
    readonlyRootFilesystem = true
    privileged             = false
    portMappings           = [{ containerPort = 8471, protocol = "tcp" }]
    environment = [
      { name = "RELAY_LISTEN", value = "0.0.0.0:8471" },
      # Behind the load balancer every client has its address: the per-client login failure
      # limit would let one person's typos block everyone (the per-account lockout still holds).
      { name = "RELAY_CLIENT_FAILURE_LIMIT", value = "0" },
      # The AWS provider (image built with relay-server/aws): RDS records, S3 Object Lock
      # anchors, every key in Secrets Manager (a task's volume is ephemeral: keys must not live
      # on it).
      { name = "RELAY_STORAGE__PROVIDER", value = "aws" },
      { name = "RELAY_STORAGE__S3_BUCKET", value = aws_s3_bucket.anchors.bucket },
      { name = "RELAY_STORAGE__AWS_REGION", value = var.region },
      { name = "RELAY_STORAGE__AWS_SECRETS_PREFIX", value = var.secrets_prefix },
      { name = "RELAY_STORAGE__AWS_KMS_KEY_ID", value = aws_kms_key.relay.arn },
    ]
    secrets = [
      { name = "RELAY_STORAGE__PG_DSN", valueFrom = aws_secretsmanager_secret.app_dsn.arn },
    ]
    mountPoints = [{ sourceVolume = "data", containerPath = "/var/lib/relay/data", readOnly = false }]
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.relay.name
        awslogs-region        = var.region
        awslogs-stream-prefix = "relay-server"
      }
    }
    healthCheck = {
      command     = ["CMD", "bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8471 && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]
      interval    = 30
      timeout     = 5
      retries     = 3
      startPeriod = 20
    }
  }])
  volume {
    name = "data"
  }
}

resource "aws_ecs_service" "server" {
  name            = var.name
  cluster         = aws_ecs_cluster.relay.id
  task_definition = aws_ecs_task_definition.server.arn
  desired_count   = 1
  launch_type     = "FARGATE"
  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.server.id]
    assign_public_ip = false
  }
  # One writer per trail is enforced by the store; a second task would only contend.
  deployment_minimum_healthy_percent = 0
  deployment_maximum_percent         = 100
}
