"""The pipeline, transport-free: an interview in, its answer out.

``service.Pipeline`` is what every entry point calls (REST /predict and /jobs today); it
receives the uploads through a callable the transport gives it, checks them, hands the
extraction to the workers (``extraction.extract`` runs there), fuses the windows through the
batcher and builds the answer. Nothing here imports FastAPI or Starlette.
"""
