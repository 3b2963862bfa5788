variable "alias" {
  type        = string
  description = "Alias of the key, without the alias/ prefix, e.g. chatsdk-prod-rds."
}

variable "description" {
  type        = string
  description = "What the key encrypts."
}

variable "additional_policy_statements" {
  type        = list(any)
  description = "Key policy statements after the account-administration one (e.g. a service principal's grant)."
  default     = []
}

variable "deletion_window_in_days" {
  type        = number
  description = "Days between scheduling the key's deletion and its deletion."
  default     = 30
}
