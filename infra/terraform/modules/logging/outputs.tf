output "kms_key_arn" {
  description = "ARN of the CMK that encrypts the environment's CloudWatch log groups."
  value       = module.kms.arn
}
