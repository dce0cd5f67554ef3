"""Model server: KServe V1 + Open Inference Protocol (V2) routes over the ONNX artifact."""
