"""ml-collections recipes: one file per recipe, each with `get_config(arg)`."""
