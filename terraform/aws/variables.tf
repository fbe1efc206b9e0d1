variable "region" {
  description = "AWS region."
  type        = string
}

variable "name" {
  description = "Name prefix of every resource."
  type        = string
  default     = "gims-relay"
}

variable "vpc_id" {
  description = "VPC the database and the service run in."
  type        = string
}

variable "private_subnet_ids" {
  description = "At least two private subnets (different AZs) for RDS and the Fargate tasks."
  type        = list(string)
}

variable "ingress_cidrs" {
  description = "CIDRs allowed to reach the relay-server listener (edges, reviewers' network, the load balancer)."
  type        = list(string)
}

variable "image" {
  description = "relay-server container image, pinned by digest (registry/repo@sha256:...)."
  type        = string
}

variable "secrets_prefix" {
  description = "Name prefix of the relay's own Secrets Manager secrets (storage.aws_secrets_prefix of relay-server, default gims-relay/); the task role may create, read and write only secrets under it."
  type        = string
  default     = "gims-relay/"
  validation {
    condition     = can(regex("^[A-Za-z0-9/_+=.@-]+/$", var.secrets_prefix))
    error_message = "secrets_prefix: Secrets Manager name characters only, ending with '/'."
  }
}

variable "anchor_retention_days" {
  description = "Object Lock COMPLIANCE default retention of notary anchors; at least the records' retention period."
  type        = number
  default     = 3650
}

variable "db_instance_class" {
  description = "RDS instance class."
  type        = string
  default     = "db.t4g.medium"
}

variable "db_allocated_storage_gb" {
  description = "RDS storage (GiB)."
  type        = number
  default     = 50
}

variable "log_retention_days" {
  description = "CloudWatch log retention."
  type        = number
  default     = 400
}

variable "tags" {
  description = "Tags on every resource."
  type        = map(string)
  default     = { application = "gims-compliance-relay" }
}
