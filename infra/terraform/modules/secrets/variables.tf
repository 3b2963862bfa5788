variable "environment" {
  type        = string
  description = "Environment name (prod, staging); secrets are named chatsdk/<environment>/..."
}
