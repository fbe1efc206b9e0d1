# Notary anchors: write-once (Object Lock COMPLIANCE), versioned, private, SSE-KMS.
resource "aws_s3_bucket" "anchors" {
  #checkov:skip=CKV_AWS_144:Cross-region replication is a customer DR choice; anchors are also exported with every package.
  #checkov:skip=CKV_AWS_18:Access logging needs a separate log bucket the customer owns; CloudTrail data events are the recommended audit of this bucket.
  #checkov:skip=CKV2_AWS_62:No consumer of event notifications; the relay reads anchors itself.
  #checkov:skip=CKV2_AWS_61:No lifecycle rule on purpose: anchors must outlive the records; Object Lock retention governs them.
  bucket_prefix       = "${var.name}-anchors-"
  object_lock_enabled = true
  force_destroy       = false
}

resource "aws_s3_bucket_versioning" "anchors" {
  bucket = aws_s3_bucket.anchors.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_object_lock_configuration" "anchors" {
  bucket = aws_s3_bucket.anchors.id
  rule {
    default_retention {
      mode = "COMPLIANCE"
      days = var.anchor_retention_days
    }
  }
  depends_on = [aws_s3_bucket_versioning.anchors]
}

resource "aws_s3_bucket_public_access_block" "anchors" {
  bucket                  = aws_s3_bucket.anchors.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "anchors" {
  bucket = aws_s3_bucket.anchors.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "anchors" {
  bucket = aws_s3_bucket.anchors.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.relay.arn
    }
    bucket_key_enabled = true
  }
}

# TLS only, and nobody (the relay's role included) may shorten retention or bypass governance.
resource "aws_s3_bucket_policy" "anchors" {
  bucket = aws_s3_bucket.anchors.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "DenyInsecureTransport"
        Effect    = "Deny"
        Principal = "*"
        Action    = "s3:*"
        Resource  = [aws_s3_bucket.anchors.arn, "${aws_s3_bucket.anchors.arn}/*"]
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      },
      {
        Sid       = "DenyRetentionChanges"
        Effect    = "Deny"
        Principal = "*"
        Action    = ["s3:BypassGovernanceRetention", "s3:PutBucketObjectLockConfiguration"]
        Resource  = [aws_s3_bucket.anchors.arn, "${aws_s3_bucket.anchors.arn}/*"]
      },
    ]
  })
  depends_on = [aws_s3_bucket_public_access_block.anchors]
}
