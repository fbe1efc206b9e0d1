resource "aws_security_group" "db" {
  name_prefix = "${var.name}-db-"
  description = "Postgres for relay-server: reachable only from the relay-server tasks"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "db_from_server" {
  security_group_id            = aws_security_group.db.id
  description                  = "Postgres from relay-server"
  referenced_security_group_id = aws_security_group.server.id
  from_port                    = 5432
  to_port                      = 5432
  ip_protocol                  = "tcp"
}

resource "aws_db_subnet_group" "relay" {
  name_prefix = "${var.name}-"
  subnet_ids  = var.private_subnet_ids
}

resource "aws_db_parameter_group" "relay" {
  name_prefix = "${var.name}-pg16-"
  family      = "postgres16"
  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }
  parameter {
    name  = "log_connections"
    value = "1"
  }
  parameter {
    name  = "log_disconnections"
    value = "1"
  }
}

resource "aws_iam_role" "rds_monitoring" {
  name_prefix = "${var.name}-rds-mon-"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "monitoring.rds.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
}

resource "aws_iam_role_policy_attachment" "rds_monitoring" {
  role       = aws_iam_role.rds_monitoring.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}

# The admin (owner) password is generated and kept in Secrets Manager by RDS itself; only the
# one-shot `relay-server migrate` task reads it. The runtime role relay_app holds SELECT, INSERT.
resource "aws_db_instance" "relay" {
  identifier_prefix                     = "${var.name}-"
  engine                                = "postgres"
  engine_version                        = "16.4"
  instance_class                        = var.db_instance_class
  allocated_storage                     = var.db_allocated_storage_gb
  storage_encrypted                     = true
  kms_key_id                            = aws_kms_key.relay.arn
  db_name                               = "relay"
  username                              = "relay_admin"
  manage_master_user_password           = true
  master_user_secret_kms_key_id         = aws_kms_key.relay.arn
  db_subnet_group_name                  = aws_db_subnet_group.relay.name
  vpc_security_group_ids                = [aws_security_group.db.id]
  parameter_group_name                  = aws_db_parameter_group.relay.name
  publicly_accessible                   = false
  multi_az                              = true
  backup_retention_period               = 35
  deletion_protection                   = true
  skip_final_snapshot                   = false
  final_snapshot_identifier             = "${var.name}-final"
  copy_tags_to_snapshot                 = true
  auto_minor_version_upgrade            = true
  iam_database_authentication_enabled   = true
  performance_insights_enabled          = true
  performance_insights_kms_key_id       = aws_kms_key.relay.arn
  monitoring_interval                   = 60
  monitoring_role_arn                   = aws_iam_role.rds_monitoring.arn
  enabled_cloudwatch_logs_exports       = ["postgresql", "upgrade"]
  apply_immediately                     = false
  ca_cert_identifier                    = "rds-ca-rsa2048-g1"
  performance_insights_retention_period = 7
}
