variable "environment" {
  type        = string
  description = "Environment name (prod, staging); buckets are chatsdk-<environment>-uploads-<account id> and ...-access-logs-..."
}

variable "allowed_origins" {
  type        = list(string)
  description = "Browser origins of the apps (scheme://host[:port]) allowed to PUT/GET/HEAD through presigned URLs (S3 CORS)."

  validation {
    condition     = length(var.allowed_origins) > 0 && alltrue([for origin in var.allowed_origins : can(regex("^https?://[^*/]+$", origin))])
    error_message = "allowed_origins must be non-empty, exact origins like https://app.example.com, with no wildcard or path."
  }
}

variable "versioning_enabled" {
  type        = bool
  description = "Keep previous object versions (recovery from accidental overwrite or delete)."
  default     = true
}

variable "noncurrent_version_expiration_days" {
  type        = number
  description = "Days after which noncurrent (overwritten or deleted) object versions are removed."
  default     = 30
}

variable "access_log_retention_days" {
  type        = number
  description = "Days the S3 server access logs of the uploads bucket are kept."
  default     = 365
}
