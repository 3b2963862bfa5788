# What an operator sets per deployment (terraform.tfvars). The sizes are in main.tf (module "chatsdk").

# ---- placement and naming ------------------------------------------------------------------------------------

variable "aws_region" {
  type        = string
  description = "AWS region of the environment (needs 3 availability zones)."
}

variable "availability_zones" {
  type        = list(string)
  description = "The 3 availability zones of aws_region to use, e.g. [\"eu-central-1a\", \"eu-central-1b\", \"eu-central-1c\"]; check the broker and DB instance types are offered in each."
}

variable "tags" {
  type        = map(string)
  description = "Extra tags on every resource (e.g. cost center); Project/Environment/ManagedBy are always set."
  default     = {}
}

# ---- public edge and access ----------------------------------------------------------------------------------

variable "public_host" {
  type        = string
  description = "Public host name of the ChatSDK API (Ingress host and ACM certificate), e.g. api.chat.example.com."
}

variable "hosted_zone_id" {
  type        = string
  description = "Route 53 hosted zone ID containing public_host (ACM DNS validation)."
}

variable "allowed_origins" {
  type        = list(string)
  description = "Exact browser origins of the apps allowed by the uploads bucket's CORS (no wildcard)."
}

variable "cluster_admin_principal_arns" {
  type        = list(string)
  description = "IAM principals given cluster-admin via EKS access entries; include the role that runs terraform (the creator gets no implicit entry)."
}

# ---- topics (stage 2 creates them from this root's outputs; k8s_values reports channel_events_partitions) -----

variable "channel_events_partitions" {
  type        = number
  description = "Partitions of chatsdk.channel-events.v1 (and its DLQ). Fixed for the topic's life: changing it moves channels to other partitions; scaling past it is a migration to a new topic."
  default     = 12
}

variable "ephemeral_partitions" {
  type        = number
  description = "Partitions of chatsdk.ephemeral.v1. Fixed for the topic's life: changing it moves channels to other partitions; scaling past it is a migration to a new topic."
  default     = 12
}
