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

# Task role: anchors can be written and read, never deleted, overwritten-with-bypass, or have
# their retention or legal hold changed (no s3:Delete*, s3:PutObjectRetention,
# s3:PutObjectLegalHold, s3:BypassGovernanceRetention, s3:PutBucket*).
resource "aws_iam_role" "task" {
  name_prefix        = "${var.name}-task-"
  assume_role_policy = data.aws_iam_policy_document.ecs_assume.json
}

data "aws_iam_policy_document" "task" {
  statement {
    sid       = "AnchorsWriteOnceRead"
    actions   = ["s3:PutObject", "s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectRetention"]
    resources = ["${aws_s3_bucket.anchors.arn}/*"]
  }
  statement {
    sid       = "AnchorsList"
    actions   = ["s3:ListBucket", "s3:ListBucketVersions", "s3:GetBucketObjectLockConfiguration", "s3:GetBucketVersioning"]
    resources = [aws_s3_bucket.anchors.arn]
  }
  statement {
    sid       = "AnchorsEncrypt"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [aws_kms_key.relay.arn]
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
      { name = "RELAY_STORAGE__PROVIDER", value = "selfhosted" },
      { name = "RELAY_S3_BUCKET", value = aws_s3_bucket.anchors.bucket },
      { name = "RELAY_S3_REGION", value = var.region },
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
