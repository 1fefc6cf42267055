"""Where the bytes live: a local directory or an S3 bucket, behind one small protocol."""
