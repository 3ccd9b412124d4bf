"""Offline scripts: local dataset folders -> TFRecords, offline foreground re-estimation."""

import jaxmatte  # noqa: F401 - sets the XLA/TensorFlow environment before TF is imported
