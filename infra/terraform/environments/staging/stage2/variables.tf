# What an operator sets per deployment (terraform.tfvars). Everything else comes from the stage-1 state.

variable "aws_region" {
  type        = string
  description = "AWS region of the environment; also the region of the state bucket holding the stage-1 state."
}

variable "state_bucket" {
  type        = string
  description = "S3 bucket holding the stage-1 state (the bucket given to terraform init of environments/staging)."
}

variable "stage1_state_key" {
  type        = string
  description = "Key of the stage-1 state in state_bucket (the key given to terraform init of environments/staging)."
  default     = "chatsdk/staging.tfstate"
}

variable "stage2_database_host" {
  type        = string
  description = "Host the postgresql provider dials instead of the RDS address, e.g. 127.0.0.1 behind an SSM port forward (empty: the RDS address)."
  default     = ""
}

variable "stage2_database_port" {
  type        = number
  description = "Port the postgresql provider dials, e.g. the local port of an SSM port forward (null: the RDS port, 5432)."
  default     = null
}
