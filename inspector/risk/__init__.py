"""The calibrated risk of each automatic answer: P(the catalog's redshift or class is wrong).

features   what the risk model looks at, one table, read off the estimates frame
truth      what "wrong" means on a survey where the truth is known (a mock)
learner    the calibrated gradient-boosting classifiers, versioned with the FNet model they describe
policy     the best z and its source, the queue for a target leak rate or a budget, the no-signal bucket
"""
