"""The network: what a model carries besides its weights (``info``, plain Python), the custom Keras layers
(``layers``), the architectures by name (``architectures``), the ``.keras`` file (``model_file``) and its ONNX
export (``onnx_file``). Import the submodules: this package imports nothing itself, so the ONNX runtime path
(``info``, ``onnx_file``) never pulls in Keras or TensorFlow."""
