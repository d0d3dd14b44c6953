"""Machine unlearning of generative models: methods that make a trained generator forget a class or a
concept while keeping the rest of what it learned. Import each method from its own module."""
