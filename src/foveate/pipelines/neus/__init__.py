"""NeuS and RNb-NeuS (seed 002): the experiment runner grows here; today ``foveate neus evaluate``."""
