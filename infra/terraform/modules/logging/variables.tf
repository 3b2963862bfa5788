variable "environment" {
  type        = string
  description = "Environment name (prod, staging); resource names are chatsdk-<environment>."
}
