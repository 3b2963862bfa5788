output "bucket_name" {
  description = "Name of the uploads bucket."
  value       = aws_s3_bucket.uploads.id
}

output "bucket_arn" {
  description = "ARN of the uploads bucket."
  value       = aws_s3_bucket.uploads.arn
}

output "kms_key_arn" {
  description = "ARN of the CMK that encrypts the uploads bucket."
  value       = module.kms.arn
}

output "access_log_bucket_name" {
  description = "Name of the bucket receiving the uploads bucket's server access logs."
  value       = aws_s3_bucket.access_logs.id
}
