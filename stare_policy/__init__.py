"""ROS-free core of STARE: policy model, action tokenizer, StARe stage logic and runtime."""
