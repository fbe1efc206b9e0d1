variable "project" {
  description = "GCP project id."
  type        = string
}

variable "region" {
  description = "Region of the bucket, Cloud SQL and Cloud Run."
  type        = string
}

variable "name" {
  description = "Name prefix of every resource."
  type        = string
  default     = "gims-relay"
}

variable "network" {
  description = "Self link of the VPC network Cloud SQL gets its private IP in (private services access must be set up on it)."
  type        = string
}

variable "vpc_connector_subnet" {
  description = "Name of a /28 subnet for Cloud Run's Direct VPC egress to Cloud SQL."
  type        = string
}

variable "image" {
  description = "relay-server container image in Artifact Registry, pinned by digest."
  type        = string
}

variable "anchor_retention_days" {
  description = "Locked retention of notary anchors; at least the records' retention period."
  type        = number
  default     = 3650
}

variable "db_tier" {
  description = "Cloud SQL machine tier."
  type        = string
  default     = "db-custom-2-7680"
}

variable "invokers" {
  description = "Principals allowed to call the relay-server service (e.g. group:qa@example.com); empty means none."
  type        = list(string)
  default     = []
}
