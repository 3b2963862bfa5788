variable "chatsdk_password" {
  type        = string
  description = "Password of the chatsdk role (random_password output of the database module)."
  sensitive   = true
}

variable "apicurio_password" {
  type        = string
  description = "Password of the apicurio role (random_password output of the database module)."
  sensitive   = true
}
