variable "environment" {
  type        = string
  description = "Environment name (prod, staging); resources are named chatsdk-<environment>."
}

variable "vpc_cidr" {
  type        = string
  description = "CIDR block of the VPC; private subnets get a /19 per AZ (room for VPC-CNI pod IPs), public a /24."
  default     = "10.0.0.0/16"

  validation {
    condition     = can(cidrnetmask(var.vpc_cidr)) && tonumber(split("/", var.vpc_cidr)[1]) <= 16
    error_message = "vpc_cidr must be a valid IPv4 CIDR of /16 or larger."
  }
}

variable "availability_zones" {
  type        = list(string)
  description = "The 3 availability zone names to use (e.g. eu-central-1a/b/c). Pinned, not discovered: subnets, brokers and the DB must never move when AWS adds a zone."

  validation {
    condition     = length(distinct(var.availability_zones)) == 3
    error_message = "ChatSDK runs in exactly 3 distinct AZs: 3 MSK brokers, RF 3, min.insync.replicas 2."
  }
}

variable "nat_gateway_per_az" {
  type        = bool
  description = "One NAT gateway per AZ (true: an AZ outage does not cut the others' egress) or a single shared one (cheaper)."
  default     = true
}

variable "logs_kms_key_arn" {
  type        = string
  description = "ARN of the CMK that encrypts the flow-log log group."
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the VPC flow-log log group, in days."
  default     = 365

  validation {
    condition     = var.log_retention_days >= 365
    error_message = "Flow logs are kept at least 365 days."
  }
}
