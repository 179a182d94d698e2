"""Using what a run trained: evaluate its checkpoint again (eval.py), classify images
(predict.py), export the network to ONNX (export.py). The backends load the checkpoints
(`Backend.load_classifier`); everything here works on uint8 (N, H, W, C) arrays, as training
does."""
