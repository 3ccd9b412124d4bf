"""Data: TFRecord builders, the tf.data pipeline, preprocessing ops and synthetic data."""
