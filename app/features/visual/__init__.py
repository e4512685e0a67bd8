"""The visual stage: video -> per-frame face features (landmarks, gaze proxy, head pose).

One module per concern, in the order a frame meets them:

- ``sampling``: PyAV decodes the first video stream and samples it at the manifest's rate;
- ``models``: MediaPipe's detector, face mesh and iris models (ONNX, through ``app.runtime``);
- ``detection``: SSD anchors, decoding, weighted NMS, the face to analyse;
- ``geometry``: rotated square crops, crop <-> image mappings;
- ``pose``: head pose from the mesh;
- ``tracking``: ``VisualExtractor``, which follows one face through the frames;
- ``space``: the normalised face space and the manifest's channel layout (shared with training);
- ``ibug68``: the 468 -> 68 landmark table.

Nothing is imported here, so the pure modules (``space``, ``ibug68``) stay light.
"""
