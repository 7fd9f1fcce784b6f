"""TfliteExport: float32, float16 and int8 TFLite variants of the trained U-Net, scored and timed."""
