"""A local model server that speaks TF Serving's REST API over pushed petseg models, with a web page.

    python -m serving --model_root outputs/petseg/serving_model --port 8501

Not Trainer code: nothing in `modules/` imports it.
"""
