"""Node ids of the pipeline's components, shared by the factory and the tools that read runs back from MLMD."""

EXAMPLE_GEN = 'TfdsExampleGen'
STATISTICS_GEN = 'StatisticsGen'
SCHEMA_GEN = 'ImportSchemaGen'
EXAMPLE_VALIDATOR = 'ExampleValidator'
TRANSFORM = 'Transform'
TRAINER = 'Trainer'
EVALUATOR = 'Evaluator'
PUSHER = 'Pusher'
SERVING_CHECK = 'ServingCheck'
INFRA_VALIDATOR = 'InfraValidator'
PREVIOUS_STATISTICS_RESOLVER = 'previous_statistics_resolver'
TFLITE_EXPORT = 'TfliteExport'
