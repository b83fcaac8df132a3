"""The pipeline: validation, the durable buffer, the intake and the writer."""
