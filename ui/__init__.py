"""The Gradio app over rag.service (ui/app.py), its HTML (ui/render.py) and upload checks (ui/uploads.py)."""
