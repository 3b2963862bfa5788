variable "environment" {
  type        = string
  description = "Environment name (prod, staging); used for the KMS key alias."
}

variable "repository_namespace" {
  type        = string
  description = "Optional ECR namespace (e.g. chatsdk-staging) when several environments share one account; empty gives the bare names command-api, projector, query-api."
  default     = ""

  validation {
    condition     = can(regex("^([a-z0-9]+([._-][a-z0-9]+)*)?$", var.repository_namespace))
    error_message = "repository_namespace must be empty or a lowercase ECR name segment without slashes."
  }
}

variable "repositories" {
  type        = list(string)
  description = "Repositories to create, one per Dockerfile target."
  default     = ["command-api", "projector", "query-api"]
}

variable "keep_last_images" {
  type        = number
  description = "How many most recent images each repository keeps; older ones expire (rollback depth)."
  default     = 30
}
