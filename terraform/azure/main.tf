data "azurerm_client_config" "current" {}

resource "azurerm_user_assigned_identity" "server" {
  name                = "${var.name}-server"
  location            = var.location
  resource_group_name = var.resource_group_name
}

resource "azurerm_log_analytics_workspace" "relay" {
  name                = "${var.name}-logs"
  location            = var.location
  resource_group_name = var.resource_group_name
  sku                 = "PerGB2018"
  retention_in_days   = 400
}
