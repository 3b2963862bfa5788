variable "environment" {
  type        = string
  description = "Environment name (prod, staging); the web ACL is chatsdk-<environment>."
}

variable "public_host" {
  type        = string
  description = "Public host name of the API (the Ingress host), e.g. api.chat.example.com; gets the ACM certificate."
}

variable "hosted_zone_id" {
  type        = string
  description = "Route 53 hosted zone ID that holds public_host (for the DNS validation records)."
}

variable "rate_limit_per_5_minutes" {
  type        = number
  description = "Requests per client IP in any 5-minute window before WAF blocks that IP; requests with server credentials (Authorization: Basic) are not counted."
  default     = 2000

  validation {
    condition     = var.rate_limit_per_5_minutes >= 100
    error_message = "WAF rate-based rules need a limit of at least 100."
  }
}

variable "common_rule_set_count_only" {
  type        = list(string)
  description = "Rules of AWSManagedRulesCommonRuleSet switched to count mode because they block legitimate ChatSDK traffic."
  # SizeRestrictions_BODY blocks bodies over 8 KB (messages may be 64 KiB); CrossSiteScripting_BODY,
  # GenericRFI_BODY, GenericLFI_BODY and EC2MetaDataSSRF_BODY block chat text that merely mentions markup, URLs,
  # "../" paths or 169.254.169.254 — the API stores text as text and never fetches or opens what it names.
  # NoUserAgent_HEADER stays blocking: browsers, mobile HTTP stacks, curl and our Rust client send one.
  default = ["SizeRestrictions_BODY", "CrossSiteScripting_BODY", "GenericRFI_BODY", "GenericLFI_BODY", "EC2MetaDataSSRF_BODY"]
}

variable "logs_kms_key_arn" {
  type        = string
  description = "ARN of the CMK that encrypts the WAF log group."
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the WAF log group, in days."
  default     = 365

  validation {
    condition     = var.log_retention_days >= 365
    error_message = "WAF logs are kept at least 365 days."
  }
}

variable "server_rate_limit_per_5_minutes" {
  type        = number
  description = "Requests with server credentials (Authorization: Basic) per client IP per 5 minutes before WAF blocks them; far above an app backend's rate (the service limits per app itself)."
  default     = 300000
}
