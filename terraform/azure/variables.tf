variable "location" {
  description = "Azure region."
  type        = string
}

variable "name" {
  description = "Name prefix (letters and digits; storage account names derive from it)."
  type        = string
  default     = "gimsrelay"
}

variable "resource_group_name" {
  description = "Existing resource group to deploy into."
  type        = string
}

variable "infrastructure_subnet_id" {
  description = "Subnet (/23 or larger) delegated to the Container Apps environment."
  type        = string
}

variable "postgres_subnet_id" {
  description = "Subnet delegated to Microsoft.DBforPostgreSQL/flexibleServers."
  type        = string
}

variable "private_endpoint_subnet_id" {
  description = "Subnet for the storage account's and Key Vault's private endpoints."
  type        = string
}

variable "postgres_private_dns_zone_id" {
  description = "Private DNS zone (privatelink.postgres.database.azure.com) linked to the VNet."
  type        = string
}

variable "image" {
  description = "relay-server container image, pinned by digest."
  type        = string
}

variable "anchor_retention_days" {
  description = "Locked version-level immutability period of anchors; at least the records' retention period."
  type        = number
  default     = 3650
}

variable "admin_object_id" {
  description = "Entra ID object id of the group that administers the Key Vault secrets."
  type        = string
}
